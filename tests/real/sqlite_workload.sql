-- The sqlite3 real-program test: create, insert 100k rows, index, query,
-- update, delete, VACUUM.  Run as: sqlite3 -bail test.db ".read THIS_FILE"
PRAGMA journal_mode = DELETE;
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, blob BLOB);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t (id, name, grp, val, blob)
SELECT i, printf('name-%06d-%s', i, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)),
       i % 97, (i * 7919) % 10007 / 7.0, zeroblob(i % 200)
FROM n;
COMMIT;
CREATE INDEX t_grp ON t (grp, val);
CREATE INDEX t_name ON t (name);
SELECT count(*), sum(grp), printf('%.3f', sum(val)), sum(length(blob)) FROM t;
SELECT grp, count(*), printf('%.3f', avg(val)), min(name), max(name) FROM t
  WHERE grp IN (3, 14, 15, 92) GROUP BY grp ORDER BY grp;
SELECT name FROM t WHERE name LIKE 'name-0999%' ORDER BY name LIMIT 5;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 AND a.grp = b.grp + 1
  GROUP BY a.grp ORDER BY 2 DESC, 1 LIMIT 5;
UPDATE t SET name = upper(name), val = val * 2 WHERE grp % 5 = 0;
SELECT count(*), printf('%.3f', sum(val)) FROM t WHERE name GLOB 'NAME-*';
DELETE FROM t WHERE id % 3 = 0;
SELECT count(*), sum(id) FROM t;
VACUUM;
PRAGMA integrity_check;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE grp = 42 ORDER BY val DESC, id LIMIT 20);
DROP INDEX t_name;
DELETE FROM t WHERE grp < 50;
VACUUM;
SELECT count(*), sum(grp), printf('%.3f', sum(val)) FROM t;

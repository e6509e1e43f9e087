-- The sqlite3 sample trace's workload: inserts, an index, queries, a delete, VACUUM.
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO t(name, score, note) SELECT 'name-' || i, (i * 37) % 1000 / 10.0, printf('%.*c', i % 50, 'x') FROM n;
CREATE INDEX t_score ON t(score);
SELECT count(*), avg(score) FROM t WHERE score > 50;
SELECT name FROM t WHERE score BETWEEN 10 AND 10.5 ORDER BY name LIMIT 5;
SELECT substr(note, 1, 3), count(*) FROM t GROUP BY length(note) ORDER BY 2 DESC LIMIT 3;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*) FROM t;

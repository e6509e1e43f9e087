# The python3 real-program test (run with PYTHONMALLOC=malloc so that every
# object comes from malloc): dicts, strings, lists, sets, sorting, json,
# regular expressions and threads.  The output is deterministic
# (PYTHONHASHSEED is fixed by the test; threads report in a fixed order).
import hashlib
import json
import re
import threading
from collections import Counter, defaultdict


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# Dicts and strings: grow, shrink, regrow.
d = {}
for i in range(200000):
    d["key-%d" % i] = ("value-%d" % (i * 7)) * (i % 5 + 1)
for i in range(0, 200000, 3):
    del d["key-%d" % i]
for i in range(50000):
    d["again-%d" % i] = [i, str(i), {"n": i}]
print("dict", len(d), digest(sorted(d)[:1000]))

# Lists: append, slice, sort, comprehension of tuples.
lst = [(i * 2654435761) % 1000003 for i in range(300000)]
lst.sort()
pairs = [(x % 97, x) for x in lst[::7]]
pairs.sort(key=lambda p: (p[0], -p[1]))
print("list", len(lst), lst[0], lst[-1], pairs[:3], sum(x for _, x in pairs) % 1000000007)

# Strings: join, split, replace, regex.
text = " ".join("word%d" % (i % 1000) for i in range(100000))
words = text.split()
counts = Counter(words)
print("text", len(text), len(words), counts.most_common(3))
found = re.findall(r"word(\d*7)\b", text)
print("regex", len(found), found[:5])
big = text.replace("word", "w").upper()
print("replace", len(big), big[:30])

# Nested structures and json round trips.
tree = defaultdict(list)
for i in range(30000):
    tree[i % 300].append({"id": i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)]})
blob = json.dumps(tree, sort_keys=True)
back = json.loads(blob)
print("json", len(blob), len(back), digest(back["42"]))

# Sets.
s1 = set(range(0, 100000, 2))
s2 = set(range(0, 100000, 3))
print("set", len(s1 & s2), len(s1 | s2), len(s1 ^ s2))

# Threads: each builds and tears down its own structures; results printed
# in thread order.
results = [None] * 4


def work(k):
    local = {}
    acc = 0
    for i in range(40000):
        key = "t%d-%d" % (k, i)
        local[key] = [key] * (i % 4)
        if i % 3 == 0:
            acc += len(local.pop("t%d-%d" % (k, i // 2), []))
    shared = "".join(sorted(local)[:50])
    results[k] = (len(local), acc, hashlib.md5(shared.encode()).hexdigest()[:12])


threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k, r in enumerate(results):
    print("thread", k, r)

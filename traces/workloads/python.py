# The python3 sample trace's workload: dicts, strings, lists, a few threads.
import json
import threading

words = ["carve", "heap", "block", "free", "alloc", "pin", "handle", "run", "slot", "page"]
index = {}
for i in range(12000):
    key = "%s-%d" % (words[i % len(words)], i)
    index[key] = [i, str(i) * (i % 7 + 1), {"n": i}]
    if i % 3 == 0:
        del index[key]

text = " ".join(k for k in index if k.startswith("heap"))
counts = {}
for w in text.split():
    counts[w[:6]] = counts.get(w[:6], 0) + 1

def worker(n, out):
    acc = []
    for j in range(1500):
        acc.append(("t%d-%d" % (n, j)) * (j % 5 + 1))
        if len(acc) > 300:
            acc = acc[150:]
    out.append(len(acc))

results = []
threads = [threading.Thread(target=worker, args=(n, results)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()

blob = json.dumps(index)
back = json.loads(blob)
print(len(index), len(counts), sum(results), len(blob), len(back))

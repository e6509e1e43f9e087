# The gawk real-program test: associative arrays, string building, split,
# gsub and sorting (PROCINFO["sorted_in"]).  Deterministic output.
BEGIN {
    for (i = 0; i < 200000; i++) {
        w = sprintf("w%03d", (i * 7919) % 500)
        count[w]++
        if (i % 4 == 0) text = text " " w
    }
    n = 0
    for (w in count) n++
    print "distinct", n, "text", length(text)
    m = split(text, parts, " ")
    s = text
    k = gsub(/w[0-9]5/, "X&X", s)
    print "parts", m, "gsub", k, length(s)
    for (i = 0; i < 50000; i++) {
        key = "k" (i % 1000)
        table[key] = table[key] sprintf("%d,", i)
    }
    PROCINFO["sorted_in"] = "@ind_str_asc"
    c = 0
    for (key in table) {
        if (c++ < 5) print key, length(table[key]), substr(table[key], 1, 20)
    }
    for (key in table) if (substr(key, 2) % 2) delete table[key]
    c = 0
    for (key in table) c++
    print "left", c
}

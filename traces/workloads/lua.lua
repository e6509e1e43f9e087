-- The lua sample trace's workload: tables and strings.
local t = {}
for i = 1, 40000 do
  t[#t + 1] = { id = i, name = "item" .. i, tags = { i % 3, i % 5 } }
  if i % 4 == 0 then t[#t - 1] = { id = -i } end
end
local parts = {}
for i = 1, #t, 7 do parts[#parts + 1] = tostring(t[i].name or t[i].id) end
local s = table.concat(parts, ",")
local count = 0
for w in s:gmatch("item(%d+)") do count = count + #w end
collectgarbage()
print(#t, #s, count)

-- wrk script: GET /api/v1/log/proof?firstSize=N&lastSize=SIZE (a consistency
-- proof to the current tree head) for random N; SIZE must be the log's size.
-- Requests are drawn and formatted once in init (see random-entry.lua).
--   SIZE=1000000 wrk -t1 -c64 -d20s -s benches/wrk/consistency-proof.lua http://127.0.0.1:3000
local size = tonumber(os.getenv("SIZE") or "1000000")
local count = tonumber(os.getenv("POOL") or "1000000")
local pool = {}
local i = 0
init = function(args)
  math.randomseed(os.time())
  for n = 1, count do
    pool[n] = wrk.format("GET", "/api/v1/log/proof?firstSize=" .. math.random(1, size) .. "&lastSize=" .. size)
  end
end
request = function()
  i = i % count + 1
  return pool[i]
end

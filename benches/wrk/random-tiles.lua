-- wrk script: random full tiles of a Rekor v2 log whose checkpoint has SIZE entries.
--   KIND=hashes (default): GET /tile/0/<N>, a full level-0 tile (8 KiB);
--   KIND=bundles: GET /tile/entries/<N>, a full entry bundle;
--   KIND=mixed: three hash tiles for each bundle, as a monitor reads them.
-- POOL requests (default 100,000) are drawn and formatted once in init.
--   SIZE=1000000 wrk -t2 -c64 -d20s -s benches/wrk/random-tiles.lua http://127.0.0.1:3000
local size = tonumber(os.getenv("SIZE") or "1000000")
local count = tonumber(os.getenv("POOL") or "100000")
local kind = os.getenv("KIND") or "hashes"
local full = math.floor(size / 256)
local pool = {}
local i = 0

-- The C2SP <N> path of tile index n: x001/x234/067.
local function index_path(n)
  local groups = { string.format("%03d", n % 1000) }
  n = math.floor(n / 1000)
  while n > 0 do
    table.insert(groups, 1, string.format("x%03d", n % 1000))
    n = math.floor(n / 1000)
  end
  return table.concat(groups, "/")
end

local function path()
  local n = math.random(0, full - 1)
  local bundle = kind == "bundles" or (kind == "mixed" and math.random(1, 4) == 1)
  if bundle then
    return "/tile/entries/" .. index_path(n)
  end
  return "/tile/0/" .. index_path(n)
end

local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

init = function(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  for n = 1, count do
    pool[n] = wrk.format("GET", path())
  end
end

request = function()
  i = i % count + 1
  return pool[i]
end
-- No response() callback: wrk reports "Non-2xx or 3xx responses" itself, and a
-- callback would make it hand every body to Lua.

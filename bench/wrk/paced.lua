-- load.lua with think time: after each response a connection waits an exponentially
-- distributed pause (mean THINK_MS, the fourth argument) before its next request, which
-- offers a Poisson-like load below the peak. wrk measures latency from the send, so
-- the pause is not counted in it.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "load.lua")

local base_init = init

function init(args)
  base_init(args)
  think_ms = tonumber(args[4])
end

function delay()
  -- wrk truncates to whole milliseconds: +0.5 keeps the mean.
  return -think_ms * math.log(1 - math.random()) + 0.5
end

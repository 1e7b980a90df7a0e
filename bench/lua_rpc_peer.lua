--[[ A node running the original Lua SPLAY libraries, for bench/test_rpc.py (the Lua peer: the
same calls of concat("one", "two") through splay.rpcq, splay.rpc and splay.urpc) and for
tests/test_rpc_lua_interop.py (pysplay and Lua nodes calling each other).

The Lua libraries are not part of pysplay and CI never has them: both run this only when
$SPLAY_LUA names a directory of them (bench/lua_splay.py; BENCHMARKS.md, "The Lua original",
says how to build one).

    lua5.1 lua_rpc_peer.lua server FAMILY PORT          -- prints PORT once listening; serves
                                                        -- concat, echo, fail and holes
    lua5.1 lua_rpc_peer.lua client FAMILY PORT CALLERS CALLS [WINDOW]
                                    -- prints {"seconds": S}: first call to last reply; exits 1
                                    -- if a call failed or returned a wrong result
    lua5.1 lua_rpc_peer.lua values FAMILY PORT  -- Lua values through the server's echo(v), then
                                                -- its answers to failing calls (echo_values)

FAMILY is persistent (rpcq), percall (rpc) or udp (urpc), as in bench/test_rpc.py. With
$RPC_BENCH_GO set the client prints "ready" after its warm-up call and waits for a line on its
standard input before it starts (the many-connections workload starts its clients together).
Every TCP peer of the benchmark sets TCP_NODELAY; so does this one (settings.nodelay).
]]

require"splay.base"
local socket = require"socket"

local MODULES = {persistent = "splay.rpcq", percall = "splay.rpc", udp = "splay.urpc"}

-- the served functions: Lua SPLAY's servers call a global function by name
function concat(a, b) return a .. b end
-- (tests/test_rpc_lua_interop.py) what Lua's decoder made of each argument, encoded back
function echo(...) return ... end
function fail() error("no") end
function holes() return 1, nil, 3 end

local mode, family, port = arg[1], arg[2], tonumber(arg[3])
local rpc = require(assert(MODULES[family], "family: persistent, percall or udp"))
if family ~= "udp" then rpc.settings.nodelay = true end
-- the log (warnings and errors) on stderr: stdout carries the port and the figures
log.global_out = function(msg) io.stderr:write(tostring(msg) .. "\n") end

local function serve()
	assert(rpc.server(port))
	print(port)
	io.stdout:flush()
end

local function call_many(callers, calls)
	local node = {ip = "127.0.0.1", port = port}
	local wrong, running = 0, callers
	assert(rpc.call(node, {"concat", "one", "two"}) == "onetwo")   -- warm-up, opens rpcq's link
	if os.getenv("RPC_BENCH_GO") then
		print("ready")
		io.stdout:flush()
		io.read("*l")     -- blocks every thread, before the clock starts
	end
	local t0 = socket.gettime()
	for _ = 1, callers do
		events.thread(function()
			for _ = 1, calls do
				if rpc.call(node, {"concat", "one", "two"}) ~= "onetwo" then wrong = wrong + 1 end
			end
			running = running - 1
			if running == 0 then events.fire("bench:done") end
		end)
	end
	events.wait("bench:done")
	local seconds = socket.gettime() - t0
	if wrong > 0 then
		io.stderr:write(wrong .. " calls failed or returned a wrong result\n")
		os.exit(1)
	end
	print(string.format('{"seconds": %.6f}', seconds))
	io.stdout:flush()
	os.exit(0)
end

-- (tests/test_rpc_lua_interop.py) Lua values through a server's echo(v): for each, a line
-- "<index> <Lua's benc encoding of the value echoed back>" (or "<index> failed <error>")
local VALUES = {"h\195\169llo", 42, -7, 2^40, 3.14, -2.5, true, false, {1, 2, 3},
	{a = 1, b = {1, "x"}}, {[1] = 1, [3] = 3}, {}, {{1, {2, {3}}}}}

local function echo_values()
	local benc = require"splay.benc"
	local node = {ip = "127.0.0.1", port = port}
	for i, v in ipairs(VALUES) do
		local ok, r = rpc.acall(node, {"echo", v}, 10)
		if ok then print(i .. " " .. benc.encode(r[1])) else print(i .. " failed " .. tostring(r)) end
	end
	-- then what a server's failing function gives this client, and a call after it:
	-- "<name> <ok> <benc of the reply, or the error>"
	for _, name in ipairs({"fail", "no_such_function", "concat"}) do
		local ok, r = rpc.acall(node, {name, "a", "b"}, 10)
		local shown = type(r) == "table" and benc.encode(r) or tostring(r)
		print(name .. " " .. tostring(ok) .. " " .. shown)
	end
	io.stdout:flush()
	os.exit(0)
end

if mode == "server" then
	events.run(serve)
elseif mode == "client" then
	if arg[6] then rpc.settings.window_size = tonumber(arg[6]) end
	events.run(function() call_many(tonumber(arg[4]), tonumber(arg[5])) end)
elseif mode == "values" then
	events.run(echo_values)
else
	error("usage: lua5.1 lua_rpc_peer.lua server FAMILY PORT | client FAMILY PORT CALLERS CALLS"
		.. " [WINDOW] | values FAMILY PORT")
end

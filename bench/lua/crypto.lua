--[[ A stand-in for luacrypto, which splay.urpc requires and which does not build against
OpenSSL 3. urpc asks it for one thing, crypto.evp.new("sha1"):digest(s) (the hex SHA1 its call
keys start with); luaossl (Debian's lua-luaossl) computes the same digest. bench/lua_splay.py puts
this directory on the Lua path after $SPLAY_LUA's. ]]

local digest = require"openssl.digest"

local function hex(s)
	return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

return {evp = {new = function(algorithm)
	return {digest = function(_, s) return hex(digest.new(algorithm):final(s)) end}
end}}

-- wrk script for the POST benchmark: every request publishes the same 64-byte text message to the channel in
-- the URL. Plain text, so that both servers accept it; no per-request Lua, so wrk itself stays cheap.
wrk.method = "POST"
wrk.body = string.rep("x", 64)
wrk.headers["Content-Type"] = "text/plain"

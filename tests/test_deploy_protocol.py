"""The daemon <-> controller line protocol: encoding and the errors of bad lines."""
import asyncio

import pytest

from splay.deploy.protocol import (DAEMON_MESSAGES, MAX_LINE, Channel, ProtocolError, decode,
                                   encode)


def test_a_message_is_one_json_line():
    line = encode({"type": "ping", "t0": 1.5})
    assert line == b'{"type":"ping","t0":1.5}\n'
    assert decode(line) == {"type": "ping", "t0": 1.5}


@pytest.mark.parametrize("line, error", [
    (b"{nope\n", "not JSON"),
    (b"\xff\xfe\n", "not JSON"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"kind": "x"}\n', "without a string 'type'"),
    (b'{"type": 3}\n', "without a string 'type'"),
])
def test_bad_lines_say_what_is_wrong(line, error):
    with pytest.raises(ProtocolError, match=error):
        decode(line)


def test_unknown_types_are_refused_where_a_set_is_given():
    with pytest.raises(ProtocolError, match="unknown message type 'start'"):
        decode(b'{"type": "start"}', DAEMON_MESSAGES)
    assert decode(b'{"type": "log", "lines": []}', DAEMON_MESSAGES)["lines"] == []


def test_a_channel_reads_lines_and_refuses_one_beyond_its_limit():
    async def scenario():
        received = []

        async def serve(reader, writer):
            channel = Channel(reader, writer)
            received.append(decode(await channel.receive_line()))
            try:
                await channel.receive_line()
            except ProtocolError as e:
                received.append(str(e))
            channel.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1024)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Channel(reader, writer)
        await client.send({"type": "hello"})
        writer.write(b"x" * 5000 + b"\n")
        await writer.drain()
        assert await client.receive_line() is None        # the server closed on the long line
        client.close()
        server.close()
        await server.wait_closed()
        return received
    received = asyncio.run(scenario())
    assert received[0] == {"type": "hello"}
    assert "line longer than" in received[1]
    assert MAX_LINE >= 2**20

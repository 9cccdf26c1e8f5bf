#!/usr/bin/python3
"""py_asyncio_echo: the asyncio streams echo server of the Python
documentation, with drain() for flow control. A real peer: one process, one
thread, every session a task; EOF from the client (reader.read() returning
b"") ends the session after what was read has been written back, and
asyncio keeps the transport open for writing after the peer's half-close.

Expected: passes every check.

Usage: py_asyncio_echo.py PORT
"""

import asyncio
import sys


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the peer reset: this session is over, the others go on
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(echo, "0.0.0.0", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

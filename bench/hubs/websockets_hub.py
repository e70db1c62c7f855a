"""Reference hub for the side-by-side benchmark (bench/README.md): the
broadcast server the `websockets` documentation leads to ("Broadcasting":
a set of connections and `broadcast()`), every message a client sends goes
to every other client.

    python bench/hubs/websockets_hub.py PORT
"""

import asyncio
import sys

from websockets.asyncio.server import broadcast, serve

CONNECTIONS = set()


async def handler(websocket):
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            broadcast((c for c in CONNECTIONS if c is not websocket), message)
    finally:
        CONNECTIONS.remove(websocket)


async def main(port):
    async with serve(handler, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

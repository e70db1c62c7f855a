"""Reference hub for the side-by-side benchmark (bench/README.md): the
FastAPI WebSocket server its documentation leads to ("Handling
disconnections and multiple clients": a ConnectionManager whose broadcast
awaits each connection's send in turn), served by uvicorn, as the seeds'
Python backends are. Every message a client sends goes to every other
client (the example's echo to the sender is left out: the publisher does
not read).

    uvicorn --app-dir bench/hubs fastapi_hub:app --host 127.0.0.1 --port PORT
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self):
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket):
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket):
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str, sender: WebSocket):
        for connection in self.active_connections:
            if connection is not sender:
                await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket):
    await manager.connect(websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(data, websocket)
    except WebSocketDisconnect:
        manager.disconnect(websocket)

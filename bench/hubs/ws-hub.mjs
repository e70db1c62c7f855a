// Reference hub for the side-by-side benchmark (bench/README.md): the
// broadcast server the `ws` README leads to ("Server broadcast"), every
// message a client sends goes to every other open client. Nothing added.
//   node bench/hubs/ws-hub.mjs PORT
import { WebSocket, WebSocketServer } from "ws";

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: "127.0.0.1", port });

wss.on("connection", (ws) => {
  ws.on("error", console.error);
  ws.on("message", (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

// Reference hub for the side-by-side benchmark (bench/README.md): the
// Socket.IO server its documentation leads to for broadcasting, every
// `event` a client emits is re-emitted to all the others
// (`socket.broadcast.emit`). Default options: clients may start on the
// WebSocket transport straight away, as the load tool's do.
//   node bench/hubs/socketio-hub.mjs PORT
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const httpServer = createServer();
// Engine.IO's heartbeat is the default (a ping every 25 s) unless the
// load tool's tests shorten it to see its clients answer (PING_INTERVAL_MS).
const pingInterval = Number(process.env.PING_INTERVAL_MS);
const io = new Server(httpServer, pingInterval > 0 ? { pingInterval, pingTimeout: pingInterval } : {});

io.on("connection", (socket) => {
  socket.on("event", (data) => {
    socket.broadcast.emit("event", data);
  });
});

httpServer.listen(port, "127.0.0.1");

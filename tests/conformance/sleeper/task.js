// Waits to be cancelled: reports the signals it receives, exits 5 on SIGINT.
process.on("SIGINT", () => { console.log("got SIGINT"); process.exit(5); });
process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(6); });
console.log("ready");
setInterval(() => {}, 1000);

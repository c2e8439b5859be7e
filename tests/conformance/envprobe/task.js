// Writes what the task process received (environment and working directory) as JSON to the
// file named by the input `out`, so tests can check the environment against the contract.
const fs = require("fs");
fs.writeFileSync(process.env.INPUT_OUT, JSON.stringify({ env: process.env, cwd: process.cwd() }, null, 2));
console.log("environment written");

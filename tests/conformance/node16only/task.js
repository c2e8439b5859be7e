// Prints the input `lines` as they are (a line starting with "stderr:" goes to stderr) and
// exits with the input `exitCode`: the runner must read the output as the agent would.
const lines = (process.env.INPUT_LINES || "").split("\n");
for (const line of lines) {
  if (line.startsWith("stderr:")) process.stderr.write(line.slice(7) + "\n");
  else process.stdout.write(line + "\n");
}
process.exitCode = parseInt(process.env.INPUT_EXITCODE || "0", 10);

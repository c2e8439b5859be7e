// A task as task authors write them, with the real azure-pipelines-task-lib: azp-local must
// give it what the agent gives (inputs, a secret variable, a service connection) and read
// its setVariable/setResult as the agent does.
const tl = require("azure-pipelines-task-lib/task");

function run() {
  try {
    const greeting = tl.getInput("greeting", true);
    const connection = tl.getInput("connection", true);
    const apiKey = tl.getVariable("apiKey");
    const url = tl.getEndpointUrl(connection, false);
    const key = tl.getEndpointAuthorizationParameter(connection, "serviceprincipalkey", false);
    const verbose = tl.getBoolInput("verbose", false);
    console.log(`greeting=${greeting}`);
    console.log(`verbose=${verbose}`);
    console.log(`apiKey length=${apiKey ? apiKey.length : 0} apiKey=${apiKey}`);
    console.log(`secret env gone=${process.env.SECRET_APIKEY === undefined}`);
    console.log(`endpoint=${url} key=${key}`);
    tl.setVariable("fromNode", `${greeting}-from-node`);
    tl.setVariable("nodeSecret", "node-made-secret", true);
    tl.setVariable("nodeOut", "output-value", false, true);
    console.log("printing node-made-secret");
    const mode = tl.getInput("mode", false) || "succeed";
    if (mode === "fail") {
      tl.setResult(tl.TaskResult.Failed, "failed on purpose");
    } else if (mode === "issues") {
      tl.setResult(tl.TaskResult.SucceededWithIssues, "partly done");
    } else {
      tl.setResult(tl.TaskResult.Succeeded, "done");
    }
  } catch (err) {
    tl.setResult(tl.TaskResult.Failed, err.message);
  }
}

run();

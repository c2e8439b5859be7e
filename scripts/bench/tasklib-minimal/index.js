// The smallest useful Node task: reads one input and reports a result, the way tasks on
// azure-pipelines-task-lib start. scripts/bench/startup.sh times it against our launcher.
'use strict';

const tl = require('azure-pipelines-task-lib/task');

const name = tl.getInput('name', true);
tl.setResult(tl.TaskResult.Succeeded, `hello ${name}`);

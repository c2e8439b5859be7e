console.log("picked Node20_1");

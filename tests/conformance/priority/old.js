console.log("picked Node16");

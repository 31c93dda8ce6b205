console.log("switchboard static test");

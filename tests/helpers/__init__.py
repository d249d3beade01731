"""What the tests share: sentinels and environments, ports, signed callbacks, the user's app,
real processes, stand-in ngrok, terminals and the browser. Imported as `helpers.<module>`."""

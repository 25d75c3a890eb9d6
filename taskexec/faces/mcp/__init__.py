"""The MCP face: tool declarations shared by the stdio/HTTP server and the Datasette hook."""

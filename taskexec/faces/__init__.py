"""The ways people look at the database: Datasette, MCP, Jupyter. Faces never import each other."""

"""The Datasette face: the plugin (dashboard, trace page, templates) and generated metadata."""

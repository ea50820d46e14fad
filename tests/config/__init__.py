"""config/: loading, validation at file:line, hostile files, credentials."""

"""The database: schema, engines and migrations, the corpus store, privacy requests,
training text read back, and the write-behind buffer for collected messages."""

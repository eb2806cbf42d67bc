from parley.cli import app

app()

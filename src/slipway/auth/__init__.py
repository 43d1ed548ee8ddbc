"""Access control: API tokens (`tokens`) and the middleware that checks them (`guard`).

`tokens` is pure and light, for the CLI and the store; `guard` needs Starlette and uvicorn."""

"""The bottom layer every other package may import: settings live in `config`; here are Redis keys, Lua
scripts, typed records, domain errors, clock, crypto and the address guard."""

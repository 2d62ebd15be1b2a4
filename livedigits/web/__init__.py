"""The web layer: the app factory, pages, the API, admin, the original apps' protocols, input parsing and
errors, and security (client address, rate limits, CORS, headers)."""

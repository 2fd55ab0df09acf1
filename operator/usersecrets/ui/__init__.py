"""The web UI: a user's Secrets page and "run a job with secrets", acting only as that user.

Server-rendered pages over `usersecrets.user`, a little script for progressive enhancement.
The process holds no credentials of its own: every API call carries the signed-in user's token.
"""

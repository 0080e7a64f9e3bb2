#!/bin/sh
# Serves the file named by the query string, e.g. /cgi-bin/file.cgi?/run/secrets/my-password,
# so tests can read what Swarm mounted into the container.
if [ -f "${QUERY_STRING}" ]; then
  echo "Content-Type: text/plain"; echo ""; cat "${QUERY_STRING}"
else
  echo "Status: 404 Not Found"; echo "Content-Type: text/plain"; echo ""; echo "no such file"
fi

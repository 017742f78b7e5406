-- Relay-backed bottles lose their credentials: each must be prepared again
-- after an upgrade, which mints a new token.
DROP TABLE relay_credentials;

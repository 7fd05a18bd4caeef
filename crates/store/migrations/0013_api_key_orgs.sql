-- An API key is bound to one organization, or (NULL) installation-wide: the bootstrap key and keys
-- created as such. A key bound to an org acts only in that org.
ALTER TABLE api_keys ADD COLUMN organization_id TEXT;

-- the current user documents, cleaned (macros/users.sql: the same rules for every version)
{{ clean_users(ref('int_current_documents')) }}

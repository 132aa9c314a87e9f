"""A login, from its start to its session: starting it (`start`), the logins in progress in one
browser (`in_progress`), the callback where the state is checked and the code exchanged
(`callback`; without a store, `spent_states` remembers each state it exchanged), the pages the
callback shows at a clean address (`clean_pages`), and ending sessions (`logout`)."""

"""The admin console (Streamlit): every page calls the library functions the CLI calls, with the same
permission checks and audit events; it holds no business logic of its own."""

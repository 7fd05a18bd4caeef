//! The Erdo surface: invoke results, scoped tokens, threads and their messages, datasets.

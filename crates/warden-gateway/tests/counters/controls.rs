//! Controls on PostgreSQL.

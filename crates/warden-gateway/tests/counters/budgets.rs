//! Token budgets on PostgreSQL.

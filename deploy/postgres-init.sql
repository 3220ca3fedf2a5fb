-- One database per concern on the shared PostgreSQL: MLflow's backend store, Prefect's database.
-- The prediction log and labels live in the default database `churn`.
CREATE DATABASE mlflow OWNER churn;
CREATE DATABASE prefect OWNER churn;

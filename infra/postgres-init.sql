-- One PostgreSQL server, three databases: the marketplace (catalog + ledger), MLflow's and Prefect's.
CREATE DATABASE mlflow OWNER marketplace;
CREATE DATABASE prefect OWNER marketplace;

"""Data sources owned by the project: the seeded synthetic customer-churn generator."""

"""Predictive models on the customer marts: customer lifetime value and churn."""

"""What an operator needs to run Billing Desk in production shape: `python -m deploy.nginx` renders the nginx site
for N console replicas (deploy/nginx/billing-desk.conf.template)."""

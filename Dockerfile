FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md config.py run.py ./
COPY portus_fab ./portus_fab
RUN pip install --no-cache-dir ".[postgres]" gunicorn
ENV PORTUS_DATA_DIR=/data
EXPOSE 5080
CMD ["gunicorn", "--bind", "0.0.0.0:5080", "--workers", "4", "run:create_app()"]

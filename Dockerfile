# The Persona app (Streamlit) for docker compose. Dependencies come from the lock file, so builds repeat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.8
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --system --no-cache -r requirements.lock
COPY persona ./persona
COPY pages ./pages
COPY app.py app_support.py ./
COPY .streamlit ./.streamlit
RUN uv pip install --system --no-cache --no-deps .
RUN useradd --create-home persona && mkdir -p /data && chown persona /data
USER persona
EXPOSE 8501
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]

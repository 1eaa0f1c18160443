FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY boot boot
COPY portal portal
COPY manage.py ./
RUN pip install --no-cache-dir ".[host]"
RUN useradd --create-home portal && mkdir -p var && chown portal var
USER portal
EXPOSE 8000
# The one production server config: boot/gunicorn.conf.py (PEP 0021).
CMD ["gunicorn", "-c", "boot/gunicorn.conf.py"]

"""AWS Rekognition beside the trained algorithms: analysis, zero-shot rows, Custom Labels."""

/**
 * Turns every error into an RFC 9457 `application/problem+json` answer from
 * the catalogue in errors.ts. Below 500 the detail is the error's own
 * (domain messages are written for clients); from 500 on, clients get a
 * fixed sentence and the trace id, and the real error goes to the log only.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError, type ErrorCode, type ProblemIssue, toProblem } from '../errors.ts';

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

const CONTEXT_TO_IN: Record<string, ProblemIssue['in']> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

function validationIssues(err: FastifyError): ProblemIssue[] {
  const where = CONTEXT_TO_IN[err.validationContext ?? 'body'] ?? 'body';
  return (err.validation as AjvError[]).map((v) => {
    let name = v.instancePath;
    let detail = v.message ?? 'is invalid';
    if (v.keyword === 'required') {
      name = `${name}/${String(v.params.missingProperty)}`;
      detail = 'is required';
    } else if (v.keyword === 'additionalProperties') {
      name = `${name}/${String(v.params.additionalProperty)}`;
      detail = 'is not an allowed property';
    }
    if (where !== 'body') name = name.replace(/^\//, '');
    return { in: where, name: where === 'body' ? name || '/' : name || '(all)', detail };
  });
}

/** Fastify's own client errors, mapped to catalogue codes with our wording. */
function frameworkError(err: FastifyError): AppError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payloadTooLarge', 'The request body is larger than this endpoint accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupportedMediaType', 'This content type is not accepted here; send application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('badRequest', 'The request body is not valid JSON', {
        issues: [{ in: 'body', name: '/', detail: 'Malformed JSON' }],
      });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('badRequest', 'The Content-Length does not match the body');
    default:
      break;
  }
  if (err instanceof SyntaxError && err.statusCode === 400) {
    return new AppError('badRequest', 'The request body is not valid JSON', {
      issues: [{ in: 'body', name: '/', detail: 'Malformed JSON' }],
    });
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code: ErrorCode =
      status === 404 ? 'resourceNotFound' : status === 413 ? 'payloadTooLarge' : status === 415 ? 'unsupportedMediaType' : status === 429 ? 'tooManyRequests' : 'badRequest';
    return new AppError(code, 'The request could not be processed');
  }
  return null;
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: AppError): FastifyReply {
  if (err.code === 'noAccessToken' || err.code === 'invalidAccessToken') {
    reply.header('www-authenticate', `Bearer realm="bxchange"${err.code === 'invalidAccessToken' ? ', error="invalid_token"' : ''}`);
  }
  const problem = toProblem(err, request.url.split('?')[0]);
  problem.traceId = request.id;
  return reply.code(err.status).type('application/problem+json').send(problem);
}

async function problemHandler(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let appError: AppError | null = null;
    if (error instanceof AppError) appError = error;
    else if (error.validation) {
      appError = new AppError('badRequest', 'The input is not valid', { issues: validationIssues(error) });
    } else appError = frameworkError(error);
    if (appError === null) {
      request.log.error({ err: error }, 'unhandled error');
      appError = new AppError('internalServerError', 'An unexpected error occurred; quote the trace id to the platform support');
    } else if (appError.status >= 500) {
      request.log.error({ err: error }, 'server error');
    } else {
      request.log.info({ code: appError.code, status: appError.status }, 'request refused');
    }
    return sendProblem(request, reply, appError);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, new AppError('resourceNotFound', `No resource at ${request.method} ${request.url.split('?')[0]}`)),
  );
}

export default fp(problemHandler, { name: 'problem-handler', fastify: '5.x' });

import { chromaSize, type I420Frame } from './frame';
import { i420ToRgba } from './yuv';

/** Draws I420 frames onto one canvas. */
export interface FrameRenderer {
  readonly kind: 'webgl' | '2d';
  draw(frame: I420Frame): void;
  dispose(): void;
}

const VERTEX = `
attribute vec2 a_pos;
varying vec2 v_tex;
void main() {
  v_tex = vec2((a_pos.x + 1.0) * 0.5, (1.0 - a_pos.y) * 0.5);
  gl_Position = vec4(a_pos, 0.0, 1.0);
}`;

// BT.601, limited range (Y 16–235, UV 16–240).
const FRAGMENT = `
precision mediump float;
varying vec2 v_tex;
uniform sampler2D u_y;
uniform sampler2D u_u;
uniform sampler2D u_v;
void main() {
  float y = 1.164 * (texture2D(u_y, v_tex).r - 0.0627451);
  float u = texture2D(u_u, v_tex).r - 0.5019608;
  float v = texture2D(u_v, v_tex).r - 0.5019608;
  gl_FragColor = vec4(
    y + 1.596 * v,
    y - 0.392 * u - 0.813 * v,
    y + 2.017 * u,
    1.0);
}`;

function compile(gl: WebGLRenderingContext, type: number, src: string): WebGLShader {
  const shader = gl.createShader(type);
  if (!shader) throw new Error('createShader failed');
  gl.shaderSource(shader, src);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    const log = gl.getShaderInfoLog(shader);
    gl.deleteShader(shader);
    throw new Error(`shader: ${log}`);
  }
  return shader;
}

class WebGlRenderer implements FrameRenderer {
  readonly kind = 'webgl' as const;
  private textures: WebGLTexture[] = [];
  private program: WebGLProgram;
  private buffer: WebGLBuffer;
  private size = { w: 0, h: 0 };

  constructor(
    private canvas: HTMLCanvasElement,
    private gl: WebGLRenderingContext,
  ) {
    const program = gl.createProgram();
    const buffer = gl.createBuffer();
    if (!program || !buffer) throw new Error('WebGL objects could not be created');
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`link: ${gl.getProgramInfoLog(program)}`);
    }
    gl.useProgram(program);
    this.program = program;
    this.buffer = buffer;

    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const pos = gl.getAttribLocation(program, 'a_pos');
    gl.enableVertexAttribArray(pos);
    gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);

    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    ['u_y', 'u_u', 'u_v'].forEach((name, i) => {
      const tex = gl.createTexture();
      if (!tex) throw new Error('createTexture failed');
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), i);
      this.textures.push(tex);
    });
  }

  draw(frame: I420Frame): void {
    const { gl, canvas } = this;
    const { width: w, height: h } = frame;
    const { cw, ch } = chromaSize(w, h);
    const resized = w !== this.size.w || h !== this.size.h;
    if (resized) {
      canvas.width = w;
      canvas.height = h;
      gl.viewport(0, 0, w, h);
      this.size = { w, h };
    }
    const planes: [Uint8Array, number, number][] = [
      [frame.y, w, h],
      [frame.u, cw, ch],
      [frame.v, cw, ch],
    ];
    planes.forEach(([data, pw, ph], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[i]);
      if (resized) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, pw, ph, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
      } else {
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, pw, ph, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
      }
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  dispose(): void {
    const { gl } = this;
    this.textures.forEach((t) => gl.deleteTexture(t));
    gl.deleteBuffer(this.buffer);
    gl.deleteProgram(this.program);
    this.textures = [];
  }
}

class CanvasRenderer implements FrameRenderer {
  readonly kind = '2d' as const;
  private image: ImageData | null = null;

  constructor(
    private canvas: HTMLCanvasElement,
    private ctx: CanvasRenderingContext2D,
  ) {}

  draw(frame: I420Frame): void {
    const { width: w, height: h } = frame;
    if (!this.image || this.image.width !== w || this.image.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.image = this.ctx.createImageData(w, h);
    }
    i420ToRgba(frame, this.image.data);
    this.ctx.putImageData(this.image, 0, 0);
  }

  dispose(): void {
    this.image = null;
  }
}

let warned = false;

/** A WebGL renderer, or the 2D-canvas fallback (with a console warning)
 *  where WebGL is unavailable. Null when the canvas has neither. */
export function createRenderer(canvas: HTMLCanvasElement): FrameRenderer | null {
  let reason = 'no WebGL context';
  try {
    const gl = canvas.getContext('webgl', {
      alpha: false,
      antialias: false,
      depth: false,
      stencil: false,
      premultipliedAlpha: false,
      preserveDrawingBuffer: false,
    });
    if (gl) return new WebGlRenderer(canvas, gl);
  } catch (err) {
    reason = String(err);
  }
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  if (!warned) {
    warned = true;
    console.warn(`Beckon video: WebGL unavailable (${reason}); drawing with a 2D canvas and JS colour conversion (slower).`);
  }
  return new CanvasRenderer(canvas, ctx);
}

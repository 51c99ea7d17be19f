// Full-screen triangle at the far plane (no vertex buffer): covers every pixel of the viewport.
// Window depth is 1.0, so a depth test against the G-buffer depth selects sky ('<=') or surface ('>').
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2)) * 2.0 - 1.0;
    gl_Position = vec4(p, 1.0, 1.0);
}

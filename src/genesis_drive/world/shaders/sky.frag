// Sky pixels: gradient + sun + haze, rain overlay; instance 0, material SKY (0).
uniform mat3 u_pix_to_world_dir;  // R_cam_to_world @ K^-1: (u, v, 1) pixel -> world ray

layout(location = 0) out vec4 o_color;
layout(location = 1) out int o_instance;
layout(location = 2) out int o_material;

void main() {
    vec2 pix = gl_FragCoord.xy - u_view_origin;
    vec3 d = normalize(u_pix_to_world_dir * vec3(pix, 1.0));
    o_color = vec4(to_display(sky_radiance(d), pix), 1.0);
    o_instance = 0;
    o_material = 0;
}
